import torch


def softmax(scores, base=2.718281828, dim=-1)
    return torch.softmax(scores, dim)
