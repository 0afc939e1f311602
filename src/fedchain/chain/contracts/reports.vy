# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title reports
@notice Sponsors' evaluation reports: a task's sponsor publishes, once per
        round, how the round's finalized model did on the sponsor's held-out
        test data (a small canonical JSON document: the model CID, the test
        set's hash and size, accuracy, loss).
@dev The report itself is the event's data, so anyone who reads the chain
     reads it (no blob server has to stay up) and checks it against the
     round's finalized model. Only the task's sponsor may publish (read from
     fedchain's `pool_facts`), once per round: a report cannot be changed
     after the fact. The contract holds no tokens and judges nothing; the
     figures are the sponsor's word. The revert prefix is "reports:".
     Reentrancy: the only external call is a view of fedchain.
"""

import fedchain

MAX_REPORT: constant(uint256) = 1024

core: public(immutable(fedchain.__interface__))
published: public(HashMap[uint256, HashMap[uint256, bool]])  # task -> round -> reported


event Reported:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    sponsor: indexed(address)
    report: Bytes[MAX_REPORT]


@deploy
def __init__(core_: fedchain.__interface__):
    """
    @param core_ The fedchain contract whose tasks' sponsors may report.
    """
    core = core_


@external
def publish(task_id: uint256, round_id: uint256, report: Bytes[MAX_REPORT]):
    """
    @notice Publish the sponsor's evaluation report of a round's model.
    @dev Effects: logs Reported with the report's bytes; marks the round
         reported. Requirements: the caller is the task's sponsor (so the
         task exists); no report for the round yet.
    """
    assert (staticcall core.pool_facts(task_id)).sponsor == msg.sender, "reports: not the sponsor"
    assert not self.published[task_id][round_id], "reports: already reported"
    self.published[task_id][round_id] = True
    log Reported(task_id=task_id, round_id=round_id, sponsor=msg.sender, report=report)
