"""langchain's fake chat model, made able to be given tools, for the LangGraph tests."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable


class ToolCallingFakeModel(GenericFakeChatModel):
    """Plays its scripted turns (tool calls included) whatever tools it is given."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        return self
