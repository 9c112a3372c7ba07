"""A one-view Django project on ``ENGINE: "secretswitch.client.adapters.django"``."""
