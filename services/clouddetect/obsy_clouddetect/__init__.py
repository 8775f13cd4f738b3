"""OBSY clouddetect service: judges the sky from allsky images (star transmission map and TFLite classifier)."""
