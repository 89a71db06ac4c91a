"""Agent loops for model providers: every tool call a model makes goes through the gate.

- :mod:`signoff.integrations.anthropic` — the Anthropic Messages API (``pip install
  'signoff[anthropic]'``);
- :mod:`signoff.integrations.openai` — the OpenAI Responses and Chat Completions APIs
  (``pip install 'signoff[openai]'``).

This package imports neither SDK; each module does, and raises
:class:`~signoff.errors.MissingDependency` when its SDK is not installed.
"""

from __future__ import annotations
