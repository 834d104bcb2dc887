"""The playground: a page for people to price, create, watch and play videos (`/playground`).

Static files only (`static/`): plain ES modules calling the public API with `fetch`, no build
step, nothing from another origin.
"""
