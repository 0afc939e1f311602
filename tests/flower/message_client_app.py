"""A Flower ClientApp written with the Message API, as Flower's documentation writes one.

``@app.train()`` takes a Message whose content holds an ArrayRecord ("arrays") and a
ConfigRecord ("config") and replies with the trained ArrayRecord and a MetricRecord that
carries "num-examples" (what FedAvg weighs by); ``@app.evaluate()`` replies with the
metrics. Local epochs come from the train config, else the run config: Flower's Python
``run_simulation`` gives clients an empty run config, so its server sends them per round.
The model, data and training loop are shared with ``numpy_client_app`` the way Flower's
templates share their ``task.py``. Nothing here knows about fedchain.
"""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from tests.flower.numpy_client_app import Net, load_data, test, train

app = ClientApp()


@app.train()
def train_fn(msg: Message, context: Context):
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    trainloader, _ = load_data(partition_id, num_partitions, int(context.run_config.get("batch-size", 16)))
    config = msg.content["config"]
    torch.manual_seed(1000 * partition_id + int(config.get("server-round", 0)))
    epochs = int(config.get("local-epochs", context.run_config.get("local-epochs", 1)))
    train_loss = train(model, trainloader, epochs, float(config["lr"]))
    metrics = {"train_loss": train_loss, "num-examples": len(trainloader.dataset)}
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context):
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    _, valloader = load_data(partition_id, num_partitions)
    eval_loss, eval_acc = test(model, valloader)
    metrics = {"eval_loss": eval_loss, "eval_acc": eval_acc, "num-examples": len(valloader.dataset)}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
