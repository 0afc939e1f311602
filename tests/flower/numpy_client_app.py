"""A Flower NumPyClient on scikit-learn's digits, written as Flower's documentation writes one.

Nothing here knows about fedchain: a small PyTorch model, a ``FlowerClient(NumPyClient)`` with
``get_parameters``/``fit``/``evaluate``, and a ``client_fn(context)`` that loads the client's
partition by ``context.node_config["partition-id"]``. The same module runs under Flower's own
simulation and under ``fedchain simulate --flower-client tests.flower.numpy_client_app:client_fn``.
Two things a reproducible comparison needs, written the way Flower's examples pin them: the
model's initial weights are seeded, and each fit seeds torch from (partition, round).
"""

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    """A two-layer perceptron for 8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def new_net() -> Net:
    torch.manual_seed(0)  # every client (and the server) starts from the same weights
    return Net()


def load_data(partition_id: int, num_partitions: int, batch_size: int = 16):
    """An IID share of digits (a seeded permutation), split 80/20 into train and validation."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    idx = np.array_split(np.random.default_rng(42).permutation(len(y)), num_partitions)[partition_id]
    x_train, x_val, y_train, y_val = train_test_split(x[idx], y[idx], test_size=0.2, random_state=42)
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    val = TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val))
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=64)


def train(net, trainloader, epochs, lr):
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for x, y in trainloader:
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    return running_loss / (epochs * len(trainloader))


def test(net, testloader):
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in testloader:
            out = net(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
    n = len(testloader.dataset)
    return loss / n, correct / n


def get_weights(net):
    return [val.cpu().numpy() for _, val in net.state_dict().items()]


def set_weights(net, parameters):
    params_dict = zip(net.state_dict().keys(), parameters)
    state_dict = OrderedDict({k: torch.tensor(v) for k, v in params_dict})
    net.load_state_dict(state_dict, strict=True)


class FlowerClient(NumPyClient):
    def __init__(self, partition_id, trainloader, valloader, local_epochs, lr):
        self.partition_id = partition_id
        self.net = new_net()
        self.trainloader = trainloader
        self.valloader = valloader
        self.local_epochs = local_epochs
        self.lr = lr

    def get_parameters(self, config):
        return get_weights(self.net)

    def fit(self, parameters, config):
        set_weights(self.net, parameters)
        torch.manual_seed(1000 * self.partition_id + int(config.get("server-round", 0)))
        epochs = int(config.get("local-epochs", self.local_epochs))
        lr = float(config.get("lr", self.lr))
        train_loss = train(self.net, self.trainloader, epochs, lr)
        return get_weights(self.net), len(self.trainloader.dataset), {"train_loss": train_loss}

    def evaluate(self, parameters, config):
        set_weights(self.net, parameters)
        loss, accuracy = test(self.net, self.valloader)
        return loss, len(self.valloader.dataset), {"accuracy": accuracy}


def client_fn(context: Context):
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    batch_size = int(context.run_config.get("batch-size", 16))
    trainloader, valloader = load_data(partition_id, num_partitions, batch_size)
    local_epochs = int(context.run_config.get("local-epochs", 1))
    lr = float(context.run_config.get("lr", 0.05))
    return FlowerClient(partition_id, trainloader, valloader, local_epochs, lr).to_client()


app = ClientApp(client_fn=client_fn)
