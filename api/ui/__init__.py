"""The dashboard under ``/ui``: static pages and vanilla JavaScript served by the API
process itself (nothing to build or install on the user's side), reading the same /v1
endpoints as any client, with the caller's API key."""
