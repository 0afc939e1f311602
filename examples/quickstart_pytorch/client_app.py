"""quickstart-pytorch's client_app.py: a Flower NumPyClient, unchanged by fedchain.

Run it with Flower's own simulation, or as fedchain trainers with the server replaced by the
chain (examples/quickstart_pytorch/README.md):

    fedchain simulate --flower-client examples.quickstart_pytorch.client_app:app
"""

import torch
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context

from examples.quickstart_pytorch.task import Net, get_weights, load_data, set_weights, test, train


class FlowerClient(NumPyClient):
    def __init__(self, partition_id, trainloader, valloader, local_epochs, lr):
        torch.manual_seed(0)  # the same initial weights on every client (and the sponsor)
        self.net = Net()
        self.partition_id = partition_id
        self.trainloader = trainloader
        self.valloader = valloader
        self.local_epochs = local_epochs
        self.lr = lr

    def get_parameters(self, config):
        return get_weights(self.net)

    def fit(self, parameters, config):
        set_weights(self.net, parameters)
        torch.manual_seed(self.partition_id * 1000 + int(config.get("server-round", 0)))
        train_loss = train(self.net, self.trainloader, self.local_epochs, self.lr)
        return get_weights(self.net), len(self.trainloader.dataset), {"train_loss": train_loss}

    def evaluate(self, parameters, config):
        set_weights(self.net, parameters)
        loss, accuracy = test(self.net, self.valloader)
        return loss, len(self.valloader.dataset), {"accuracy": accuracy}


def client_fn(context: Context):
    partition_id = context.node_config["partition-id"]
    num_partitions = context.node_config["num-partitions"]
    trainloader, valloader = load_data(partition_id, num_partitions)
    local_epochs = context.run_config.get("local-epochs", 1)
    lr = context.run_config.get("lr", 0.01)
    return FlowerClient(partition_id, trainloader, valloader, local_epochs, lr).to_client()


app = ClientApp(client_fn=client_fn)
