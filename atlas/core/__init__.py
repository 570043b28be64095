"""The frame every job runs in: the typed config and environment, errors, the stage pipeline and
its content-addressed cache, committed artifacts, progress and warnings, paths and resources."""
