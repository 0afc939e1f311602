"""Flower clients that go wrong in fit, by partition: 0 raises, 1 returns NaN, 2 returns one
array too few, 3 returns a wrong shape; the others are tests/flower/numpy_client_app's honest
client. A trainer running one of these sends nothing that round, logs why, and is not slashed."""

import numpy as np
from flwr.common import Context
from tests.flower import numpy_client_app as honest


class FaultyClient(honest.FlowerClient):
    def fit(self, parameters, config):
        arrays, n, metrics = super().fit(parameters, config)
        if self.partition_id == 0:
            raise RuntimeError("the GPU caught fire")
        if self.partition_id == 1:
            return [np.full_like(a, np.nan) for a in arrays], n, metrics
        if self.partition_id == 2:
            return arrays[:-1], n, metrics
        if self.partition_id == 3:
            return [arrays[0].T, *arrays[1:]], n, metrics
        return arrays, n, metrics


def client_fn(context: Context):
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    trainloader, valloader = honest.load_data(partition_id, num_partitions)
    return FaultyClient(partition_id, trainloader, valloader, 1, 0.05).to_client()
