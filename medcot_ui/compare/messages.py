"""A pane as the Compare tab's Chatbot shows it: the question, a collapsible "Thinking" block, then the answer."""

from __future__ import annotations

from typing import Any

from medcot_ui.compare.panes import Pane
from medcot_ui.training.prompts import THINK_CLOSE


def pane_messages(question: str, pane: Pane | None) -> list[dict[str, Any]]:
    """A pane as Gradio Chatbot messages: the question, a collapsible "Thinking" block, then the answer.

    The thinking block uses the Chatbot's own metadata support: ``status`` "pending" (open, spinner) while the
    model is still reasoning, "done" (closed) once the answer starts; ``duration`` shows the seconds spent
    thinking and ``log`` the token count. A completion that never closed ``</think>`` stays labelled unfinished
    and is never passed off as an answer.
    """
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    if pane is None:
        return messages
    done = pane.finished
    comp = pane.completion
    if comp.state == "none":  # the prompt did not open a reasoning block and the model wrote none
        if comp.answer or done:
            messages.append({"role": "assistant", "content": comp.answer or _empty_note(pane)})
        return messages
    thinking_open = comp.state == "unclosed" and not done
    seconds = pane.think_seconds if pane.think_seconds is not None else (pane.seconds or 0.0)
    think_tokens = pane.think_tokens if pane.think_tokens is not None else pane.tokens
    title = ("Thinking" if comp.state == "closed" or not done
             else "Thinking (unfinished: the reasoning never closed with </think>)")
    messages.append({"role": "assistant", "content": comp.reasoning or "…",
                     "metadata": {"title": title, "status": "pending" if thinking_open else "done",
                                  "duration": round(seconds, 1), "log": f"{think_tokens} tokens"}})
    if comp.state == "closed":
        answer = comp.answer
        if done:
            answer = (answer or "*(the model closed its reasoning but wrote no answer)*") + _finish_note(pane)
        if answer:
            messages.append({"role": "assistant", "content": answer})
    elif done:
        why = {"length": f"it reached the limit of {pane.tokens} new tokens",
               "stopped": "it was stopped", "eos": "the model ended without closing it"}[pane.finish_reason or "eos"]
        messages.append({"role": "assistant", "content": f"*No answer: the reasoning was never closed with "
                                                         f"`{THINK_CLOSE}` ({why}).*"})
    return messages


def _finish_note(pane: Pane) -> str:
    rate = pane.tokens_per_s
    stats = f"{pane.tokens} tokens in {pane.seconds or 0:.1f} s" + (f", {rate:.0f} tokens/s" if rate else "")
    reason = {"eos": "", "length": " · cut at the max new tokens limit", "stopped": " · stopped"}[
        pane.finish_reason or "eos"]
    return f"\n\n<sub>{stats}{reason}</sub>"


def _empty_note(pane: Pane) -> str:
    return "*(no output)*" + _finish_note(pane)
