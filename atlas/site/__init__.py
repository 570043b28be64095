"""The site layer: pages from Markdown and widgets, the theme, charts and the render step that
writes the whole site. It reads stage outputs only through the stages' readers."""
