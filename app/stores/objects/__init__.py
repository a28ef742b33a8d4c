"""Object storage: where media files live, handed to clients as presigned URLs."""
