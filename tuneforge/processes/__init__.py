from tuneforge.processes.environment import torch_env
