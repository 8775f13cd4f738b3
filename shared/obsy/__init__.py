"""OBSY common library: configuration, the MQTT bus contract, Home Assistant discovery, astronomy and INDI helpers."""
