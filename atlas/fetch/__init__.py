"""Getting images: image sources (folders, webdataset tars), the safe downloader, the fetch figures."""
