"""The campaign dashboard: the reference client of the schema, served by the app at `/`."""
