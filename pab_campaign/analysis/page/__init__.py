"""The campaign on one self-contained HTML page: `model` (sections, tables, figures), `sections` (one
builder per section, through the analyses' own functions), `render` (the Jinja2 template, writing)."""
