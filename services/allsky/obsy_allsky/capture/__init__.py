"""Getting raw frames: the INDI camera, FITS decoding and the exposure control."""
