"""labkit: an interactive FOTA lab for LwM2M."""
