"""Training: supervised fine-tuning (LoRA or full) and answer-loss evaluation, plus Cherry LLM's
pre-experienced model. Modules import torch lazily."""
