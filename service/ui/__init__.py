"""The operator console: server-rendered pages under ``/ui`` (the human queue, KPIs, policies).

No front-end build step: Jinja2 templates with autoescape, plots drawn server-side as SVG, forms
that work without JavaScript. Every page needs the ``admin`` scope (``ui/auth.py``).
"""
