"""The conferences service: district integration conferences, their invitations and answers."""
