"""``pairgan serve``: a REST API and a single-page web editor for trained models.

``app.py`` builds the FastAPI application (``create_app``: the routes), ``models.py`` holds the
served models (``load_models``) and turns requests into batches and outputs into PNGs through the
methods' hooks, ``limits.py`` holds the request limits, the image header probe and the bounded
worker queue, and ``static/`` the editor (HTML, JS, CSS, shipped as package data). Needs the ``web`` extra: ``pip install 'pairgan[web]'``.
"""
