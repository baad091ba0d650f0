"""The serving layer: settings and config in, the FastAPI suggestion API, seller page and prediction log out.

`pricewise.serving.app.create_app` builds the application; `pricewise.serving.server.run` runs it on uvicorn.
"""
