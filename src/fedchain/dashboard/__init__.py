"""``fedchain dashboard``: a task live in the browser, built from the chain and the blobs alone."""
