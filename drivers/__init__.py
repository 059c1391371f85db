"""Scanner backends, barcode decoders and GPIO for the Antrean appliance."""
