"""What the apps need to know about shop frameworks that keep products their own way."""
