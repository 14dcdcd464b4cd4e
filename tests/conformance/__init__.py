"""The adapter conformance suite (issue 3): ASGI, Django, Flask and WSGI record alike."""
