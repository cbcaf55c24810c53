"""Background training jobs: the queue, the worker that runs them and the training process."""
