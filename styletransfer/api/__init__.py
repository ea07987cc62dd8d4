"""REST API of styletransfer: the styles shoppers can see, and style management for staff."""
