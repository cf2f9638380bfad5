"""Dataset sources, splits and tf.data builders."""
