"""LLM serving phases: a causal LM's prefill, or one decode step against a static KV cache."""
