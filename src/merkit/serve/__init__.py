"""``merkit serve``: an HTTP API and a web page over a trained model.

:mod:`merkit.serve.settings` (model and limits), :mod:`merkit.serve.limits` (request-body cap),
:mod:`merkit.serve.upload` (an upload to a checked temporary file), :mod:`merkit.serve.app` (the
FastAPI app); the page is plain HTML/JS/SVG under ``static/``.
"""
