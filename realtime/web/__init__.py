"""Browser front ends: the upload-and-analyse app (`python -m realtime serve`) and the live view (`--serve`)."""
