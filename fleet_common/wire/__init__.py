"""The delivery protocol's shapes: signed statements and the answers and reports around them."""
