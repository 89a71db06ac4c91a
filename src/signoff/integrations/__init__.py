"""Agent loops for model providers: every tool call a model makes goes through the gate.

- :mod:`signoff.integrations.anthropic` — the Anthropic Messages API (``pip install
  'signoff[anthropic]'``);
- :mod:`signoff.integrations.openai` — the OpenAI Responses and Chat Completions APIs
  (``pip install 'signoff[openai]'``).

Adapters that keep an agent framework's own loop and pause, with signoff deciding:

- :mod:`signoff.integrations.langgraph` — LangGraph's ``ToolNode`` and ``interrupt``,
  langchain's ``create_agent`` (``pip install 'signoff[langgraph]'``);
- :mod:`signoff.integrations.pydantic_ai` — any Pydantic AI toolset, inline or through
  deferred tools (``pip install 'signoff[pydantic-ai]'``);
- :mod:`signoff.integrations.openai_agents` — the OpenAI Agents SDK's ``needs_approval``
  and ``RunState`` interruptions (``pip install 'signoff[openai-agents]'``).

This package imports none of them; each module does, and raises
:class:`~signoff.errors.MissingDependency` when its package is not installed.
"""

from __future__ import annotations
