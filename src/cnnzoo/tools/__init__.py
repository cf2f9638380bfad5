"""Commands around the pipeline: `cnnzoo run` and its warm launcher, the label sweep, benchmarks."""
