"""Our own copies of what users paid for: finished videos, their posters, uploaded images.

Fal's files live only as long as Fal keeps them; ours live until the user deletes them or
MEDIA_RETENTION_DAYS passes. `store` is the one small interface (local files or S3),
`links` signs the URLs clients get, `probe` reads a video's facts and poster with PyAV,
`download` streams a remote file to disk without holding it in memory.
"""
