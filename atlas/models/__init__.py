"""Models and what runs them: the torch device rule, the nearest-caption search, the nudity
classifier that screens generated images."""
