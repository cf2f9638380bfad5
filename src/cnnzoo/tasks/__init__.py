"""What each task computes beyond a classifier: classification metrics, segmentation, detection,
verification, style transfer."""
