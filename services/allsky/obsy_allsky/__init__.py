"""OBSY allsky service: captures allsky frames from an INDI camera and processes them on GPU or CPU."""
