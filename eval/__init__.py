"""imgsearch's evaluation (make eval): collections, metrics, the run and its report."""
