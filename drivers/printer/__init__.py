"""ESC/POS thermal slip printers: connections, status, rendering, and their doubles."""
