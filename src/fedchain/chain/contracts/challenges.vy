# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title challenges
@notice Optimistic fraud proofs for round results. During a round's
        challenge window anyone may prove that the result its validator
        quorum voted for is wrong by recomputing one chunk of the new model
        on chain; a proven-wrong result is reverted (fedchain.revert_round)
        and every validator who voted for it becomes slashable.
@dev The judgments are in stateless judges, fixed at deployment
     (judging.vy): model_judge.vy recomputes one value of the voted model
     (challenge), score_judge.vy a trainer's score or the scores tree
     (challenge_score, challenge_total), table_judge.vy a step of the
     bisection of a Krum vote's distance table (challenge_distance_sum,
     challenge_distance_leaf). This contract checks what every challenge
     needs (the recipe, the round, the leading vote, the window, the
     commitment), staticcalls the judge with the challenge's own calldata,
     and settles: it alone takes bonds, holds the forfeited ones and calls
     fedchain.revert_round. The coordinate-wise rules' arithmetic is
     documented in model_judge.vy and docs/decisions.md ("Challenges").
     The distances are not coordinate-wise: they are sums over every chunk,
     which the vote commits to as a Merkle sum tree. open_table opens its
     root and records the selection its sums imply (the value check reads
     it); a wrong sum is proven by bisection down the tree: one node that is
     not the sum of its children (challenge_distance_sum) or one leaf that is
     not its chunk's distances (challenge_distance_leaf). Each step is one
     transaction: the committed intermediate sums make the bisection
     non-interactive, provided the committee's tree is available (it travels
     in a blob named by the voted model's lineage; see docs/decisions.md,
     "Challenges").
     Money: a challenge posts `bond` tokens. If the recomputed chunk differs
     from the claimed one the round is reverted and the bond returned; the
     challenger then earns the reporter share of every wrong voter's slash.
     If it matches, the challenge failed and the bond is forfeited (kept
     here, owed to nobody).
     Commit-reveal (SECURITY-REVIEW M-1): a challenge's calldata is its
     whole proof, so a bot that sees it pending could copy it and take the
     bond refund and the challenger's reporter shares. Every challenge that
     can pay (all but open_table, which pays and records no one) therefore
     needs the sender's commitment to that exact calldata
     (commit_challenge), made in an earlier block while the round was open;
     a copier cannot have one. The bond is taken with the challenge, not
     with the commitment.
     The task's recipe hash binds the aggregation rule: recipe_hash ==
     keccak256(abi_encode(rule, param1, param2, score, keccak256(recipe JSON))),
     so a median round cannot be "proven wrong" with the mean, and the model
     of a rule the contract cannot recompute (rule 0) cannot be challenged
     here at all (its scores and total score can: they do not depend on the
     rule).
"""

from ethereum.ercs import IERC20
import fedchain
import merkle
import commitments
import judging
import krum
import model_judge
import score_judge
import table_judge
import secagg_judge
import sumtree

initializes: judging

CHUNK: constant(uint256) = judging.CHUNK
CHUNK_BYTES: constant(uint256) = judging.CHUNK_BYTES
MAX_UPDATES: constant(uint256) = judging.MAX_UPDATES
MAX_DEPTH: constant(uint256) = sumtree.MAX_DEPTH
RULE_KRUM: constant(uint256) = judging.RULE_KRUM
RULE_BULYAN: constant(uint256) = judging.RULE_BULYAN
MAX_TABLE: constant(uint256) = sumtree.MAX_TABLE  # reveals a distance table may cover (Krum rules)
MAX_PAIRS: constant(uint256) = sumtree.MAX_PAIRS  # MAX_TABLE * (MAX_TABLE - 1) / 2
MAX_VECTOR_BYTES: constant(uint256) = score_judge.MAX_VECTOR_BYTES
MAX_SCORES: constant(uint256) = score_judge.MAX_SCORES
MAX_CALL: constant(uint256) = 2**19  # the longest challenge calldata `commitment` hashes (a challenge's is below 2**18)

INDEX_MASK: constant(uint256) = judging.INDEX_MASK
U64: constant(uint256) = judging.U64


struct Distances:
    # A Krum-rule vote's scores_root is keccak256(scores_tree_root ++ table
    # root): the table is a Merkle *sum* tree over the model's chunks (see
    # sumtree.vy) whose every node carries, for each pair of reveal
    # indices i < j (at j * (j - 1) / 2 + i), the sum over its chunks of
    # |u_i[c] - u_j[c]|**2, 0 when either update was rejected. The root's
    # sums are the round's squared distances.
    scores_tree_root: bytes32
    left: bytes32        # the table root's children (both empty: the root is leaf 0)
    right: bytes32
    totals: DynArray[uint256, MAX_PAIRS]


deployer: immutable(address)
# keccak256 of its whole calldata, returned as one word: a 30-byte contract
# deployed by __init__, since Vyper cannot hash msg.data of a variable length
# in place. Its code: CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY CALLDATASIZE
# PUSH1 0 KECCAK256 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN, behind an initcode
# that returns it (CODECOPY of the 18 bytes after its own 12).
HASHER_INITCODE: constant(Bytes[30]) = x"6012600c60003960126000f33660006000373660002060005260206000f3"
hasher: public(immutable(address))
bond: public(immutable(uint256))
selector: public(immutable(krum.__interface__))  # Krum's and Bulyan's selections, a contract of their own
models_judge: public(immutable(model_judge.__interface__))  # challenge's judge
scores_judge: public(immutable(score_judge.__interface__))  # challenge_score and challenge_total's judge
tables_judge: public(immutable(table_judge.__interface__))  # the distance table bisection's judge
unmasking_judge: public(immutable(secagg_judge.__interface__))  # challenge_unmasking's judge
fc: public(fedchain.__interface__)
# Bonds of failed challenges: held here for ever (this contract's whole token balance).
forfeited: public(uint256)
# open_table's record, keyed by keccak256(abi_encode(task, round, leading vote
# hash)): OPENED | MALFORMED (a table of the wrong size) | the selection
# (krum.krum_selection: a mask, and the update kept in part)
selections: public(HashMap[bytes32, uint256])
# Bulyan's record beside it: the seats chosen of a reveal index chosen in part (krum.bulyan_selection)
bulyan_seats: public(HashMap[bytes32, HashMap[uint256, uint256]])
OPENED: constant(uint256) = model_judge.OPENED
MALFORMED: constant(uint256) = model_judge.MALFORMED
# Challenge commitments (commit_challenge): challenger -> commitment -> the block
# it was last made in (0: none; cleared when a challenge uses it)
committed: public(HashMap[address, HashMap[bytes32, uint256]])


event TableOpened:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    selection: uint256   # bit i: reveal i is averaged (0 with malformed)
    malformed: bool


event ChallengeCommitted:
    challenger: indexed(address)
    commitment: bytes32


event Challenged:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    challenger: indexed(address)
    kind: uint8      # 1 aggregate value, 2 one trainer's score, 3 the total score,
                     # 4 a distance table node's sums, 5 a distance table leaf,
                     # 6 an unmasked aggregate value (secure aggregation)
    at: uint256      # the value's position (chunk * 64 + j), the trainer's reveal
                     # index, the node's height * 2**32 + position, or the leaf's chunk
    success: bool


@deploy
def __init__(bond_: uint256, selector_: krum.__interface__, model_: model_judge.__interface__,
             scores_: score_judge.__interface__, tables_: table_judge.__interface__,
             unmasking_: secagg_judge.__interface__):
    """
    @param bond_ Tokens a challenger posts; forfeited (kept here for ever) if
           the challenge fails.
    @param selector_ The krum contract (Krum's and Bulyan's selections).
    @param model_ The judge of a model's value (model_judge.vy), `scores_`
           of scores (score_judge.vy), `tables_` of distance tables
           (table_judge.vy), `unmasking_` of a secure-aggregation round's
           unmasked aggregate (secagg_judge.vy): stateless, fixed here for ever.
    """
    deployer = msg.sender
    hasher = raw_create(HASHER_INITCODE)
    bond = bond_
    selector = selector_
    models_judge = model_
    scores_judge = scores_
    tables_judge = tables_
    unmasking_judge = unmasking_


@external
def bind(fedchain_: fedchain.__interface__):
    """
    @notice Name the fedchain contract this contract judges for (once, by
            the deployer: fedchain takes this contract's address at
            deployment, so one of the two must be told afterwards).
    """
    assert msg.sender == deployer, "challenges: not the deployer"
    assert self.fc.address == empty(address), "challenges: already bound"
    self.fc = fedchain_


@external
def commit_challenge(commitment: bytes32):
    """
    @notice The first half of a challenge (SECURITY-REVIEW M-1): commit to
            it, then send it in a later block. A challenge's calldata is its
            whole proof, so whoever sees it pending could copy it; only the
            sender of a commitment made in an earlier block can use it, and a
            copier cannot have made one before it saw the proof.
    @param commitment `commitment(msg.sender, calldata)`:
           keccak256(abi_encode(challenger, keccak256(calldata))), calldata
           being the challenge transaction's input exactly (its selector, so
           the kind of challenge, and the canonical ABI encoding of its
           arguments, which name the task, the round and the vote).
    @dev Effects: records the block of the sender's commitment (the latest,
         if it commits the same twice: a commitment made before its round
         opened is renewed by committing again). It takes no bond: the challenge
         posts it (a commitment by one sender costs nobody else anything,
         and two honest watchers committing to the same fault must not lose
         a bond each when the first one's challenge reverts the round).
         Requirements: none; a commitment counts only for a round open at
         its block and a challenge sent in a later block within the window.
    """
    self.committed[msg.sender][commitment] = block.number
    log ChallengeCommitted(challenger=msg.sender, commitment=commitment)


@external
@pure
def commitment(challenger: address, calldata: Bytes[MAX_CALL]) -> bytes32:
    """
    @notice What `challenger` commits to (commit_challenge) before it sends a
            challenge whose transaction input is `calldata`.
    @return keccak256(abi_encode(challenger, keccak256(calldata))).
    """
    return keccak256(abi_encode(challenger, keccak256(calldata)))


@external
@nonreentrant
def challenge(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    chunk: uint256,
    coordinate: uint256,
    depth: uint256,
    nodes: DynArray[address, MAX_UPDATES],
    update_roots: DynArray[bytes32, MAX_UPDATES],
    salts: DynArray[bytes32, MAX_UPDATES],
    update_chunks: Bytes[65536],
    update_proofs: DynArray[bytes32, 5120],
    parent_chunk: Bytes[CHUNK_BYTES],
    parent_proof: DynArray[bytes32, MAX_DEPTH],
    claimed_chunk: Bytes[CHUNK_BYTES],
    claimed_proof: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice Challenge the leading result of a round in its window by
            recomputing value `coordinate` of chunk `chunk` of the new model
            (judged by model_judge.challenge, which documents the arguments).
    @param vote The leading vote's fields (from its Voted event).
    @param recipe The preimage of the task's recipe hash: its rule (1 FedAvg,
           2 FedMedian, 3 FedTrimmedAvg, 4 Krum, 5 MultiKrum, 6 Bulyan) and its
           parameters, its score kind and keccak256 of the recipe JSON.
    @dev Effects: takes the bond; if the value was wrong, reverts the round
         (fedchain.revert_round records the sender as its challenger, who
         earns the reporter share of every wrong voter's slash) and returns
         the bond, else forfeits it (`forfeited`). Uses up the commitment.
         Requirements: the task's rule, its current round, a leading vote
         equal to `vote`, the challenge window (checked by
         fedchain.revert_round on success, here for failure), what the judge
         requires, the sender's commitment to this calldata from an earlier
         block of the round (commit_challenge), and the bond's allowance.
    @return True if the result was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    task: fedchain.Task = staticcall self.fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    wrong: bool = self._judge(models_judge.address, r)
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=1,
                   at=chunk * CHUNK + coordinate, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong
@external
def open_table(task_id: uint256, round_id: uint256, vote: judging.Vote, recipe: judging.RecipeRule,
               nodes: DynArray[address, MAX_TABLE], distances: Distances):
    """
    @notice First step against a Krum-rule vote (Krum, MultiKrum, Bulyan):
            open its distance table's root and record the selection the
            root's sums imply, for `challenge` to use. It judges nothing, so
            it takes no bond; anyone may call it in the window (again: the
            record is a function of the committed root, so it cannot change).
    @param nodes Every revealer of the round, in reveal order: Krum and
           MultiKrum count seats, which their reveal records hold.
    @param distances The vote's scores tree root and the table root's
           children hashes and sums (see Distances).
    @dev Krum's selection: each update's score is its summed squared
         distance to its n - f - 2 nearest others, the m lowest win; Bulyan's
         is Krum repeated n - 2f times on what is left. A separate
         transaction because the table (n(n-1)/2 words) would otherwise make
         every rule's `challenge` reserve the memory for it.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    rule: uint256 = recipe.rule
    assert rule >= RULE_KRUM and rule <= RULE_BULYAN, "challenges: no distance table"
    assert r.reveals <= MAX_TABLE, "challenges: table too large"
    key: bytes32 = keccak256(abi_encode(task_id, round_id, r.leader))
    table: bytes32 = empty(bytes32)
    if distances.left == empty(bytes32) and distances.right == empty(bytes32):
        table = sumtree._leaf(0, distances.totals)
    else:
        table = sumtree._node(distances.left, distances.right, distances.totals)
    assert keccak256(concat(distances.scores_tree_root, table)) == vote.scores_root, "challenges: not the vote's distance table"
    malformed: bool = len(distances.totals) != sumtree._pairs(r.reveals)
    assert len(nodes) == r.reveals, "challenges: ragged inputs"
    seats: DynArray[uint256, MAX_TABLE] = []
    for i: uint256 in range(len(nodes), bound=MAX_TABLE):
        rec: uint256 = staticcall fc.record(task_id, round_id, nodes[i])
        assert rec & INDEX_MASK == i + 1, "challenges: not that reveal"
        seats.append((rec >> 160) & U64)
    selection: uint256 = 0
    if not malformed:
        accepted: uint256 = 0
        if r.reveals > 0:
            accepted = (max_value(uint256) >> (256 - r.reveals)) & ~vote.rejected
        if rule == RULE_BULYAN:
            chosen: DynArray[uint256, MAX_TABLE] = staticcall selector.bulyan_selection(
                accepted, r.reveals, distances.totals, recipe.param1, seats)
            for i: uint256 in range(len(chosen), bound=MAX_TABLE):
                if chosen[i] > 0:
                    selection |= 1 << i
                    if chosen[i] != seats[i]:  # chosen in part (in whole: its record's seats)
                        self.bulyan_seats[key][i] = chosen[i]
        else:
            selection = staticcall selector.krum_selection(accepted, r.reveals, distances.totals, recipe.param1,
                                                           1 if rule == RULE_KRUM else recipe.param2, seats)
    self.selections[key] = OPENED | (MALFORMED if malformed else 0) | selection
    log TableOpened(task_id=task_id, round_id=round_id, selection=selection, malformed=malformed)


@external
@nonreentrant
def challenge_distance_sum(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    scores_tree_root: bytes32,
    height: uint256,
    position: uint256,
    sums: DynArray[uint256, MAX_PAIRS],
    left: table_judge.SumNode,
    right: table_judge.SumNode,
    siblings: DynArray[bytes32, MAX_DEPTH],
    digests: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice One step of the bisection of a Krum vote's distance table: the
            node at `height` (leaves: 0) and `position` must hold the sums of
            its two children, entry by entry, each of the table's size
            (judged by table_judge.challenge_distance_sum, which documents the
            arguments).
    @dev Effects and requirements: as `challenge`'s (the bond, the round,
         the vote, the window, the commitment), and the judge's.
    @return True if the node was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    task: fedchain.Task = staticcall self.fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    wrong: bool = self._judge(tables_judge.address, r)
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=4,
                   at=height * 2**32 + position, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_distance_leaf(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    scores_tree_root: bytes32,
    chunk: uint256,
    sums: DynArray[uint256, MAX_PAIRS],
    siblings: DynArray[bytes32, MAX_DEPTH],
    digests: DynArray[bytes32, MAX_DEPTH],
    i: uint256,
    j: uint256,
    a: table_judge.Opening,
    b: table_judge.Opening,
) -> bool:
    """
    @notice The last step of the bisection of a Krum vote's distance table:
            entry (i, j) of leaf `chunk` must be |u_i[c] - u_j[c]|**2 over
            chunk c of the two updates (judged by
            table_judge.challenge_distance_leaf, which documents the arguments).
    @dev Effects and requirements: as `challenge`'s (the bond, the round,
         the vote, the window, the commitment), and the judge's.
    @return True if the entry was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    task: fedchain.Task = staticcall self.fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    wrong: bool = self._judge(tables_judge.address, r)
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=5, at=chunk, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_score(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    index: uint256,
    node: address,
    score: uint256,
    score_proof: DynArray[bytes32, merkle.MAX_DEPTH],
    update_root: bytes32,
    salt: bytes32,
    update: Bytes[MAX_VECTOR_BYTES],
    parent: Bytes[MAX_VECTOR_BYTES],
    claimed: Bytes[MAX_VECTOR_BYTES],
) -> bool:
    """
    @notice Challenge one trainer's score in the leading vote: the cosine
            score recomputed from the whole update, parent model and voted
            model, times the trainer's seats (judged by
            score_judge.challenge_score, which documents the arguments).
    @dev Effects and requirements: as `challenge`'s (the bond, the round,
         the vote, the window, the commitment), and the judge's.
    @return True if the score was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    task: fedchain.Task = staticcall self.fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    wrong: bool = self._judge(scores_judge.address, r)
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=2, at=index, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_total(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    nodes: DynArray[address, MAX_SCORES],
    scores: DynArray[uint256, MAX_SCORES],
    table_root: bytes32,
) -> bool:
    """
    @notice Challenge the leading vote's scores tree as a whole: one leaf per
            reveal of the round, summing to `total_score`, which divides
            every trainer's reward. Any rule may be challenged here, rule 0
            (not recomputable) included (judged by score_judge.challenge_total,
            which documents the arguments).
    @dev Effects and requirements: as `challenge`'s (the bond, the round,
         the vote, the window, the commitment), and the judge's.
    @return True if the vote was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    task: fedchain.Task = staticcall self.fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    wrong: bool = self._judge(scores_judge.address, r)
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=3, at=0, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_unmasking(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    chunk: uint256,
    coordinate: uint256,
    depth: uint256,
    nodes: DynArray[address, MAX_UPDATES],
    update_roots: DynArray[bytes32, MAX_UPDATES],
    salts: DynArray[bytes32, MAX_UPDATES],
    seeds: DynArray[bytes32, MAX_UPDATES],
    masked_chunks: Bytes[131072],
    masked_proofs: DynArray[bytes32, 5120],
    parent_chunk: Bytes[CHUNK_BYTES],
    parent_proof: DynArray[bytes32, MAX_DEPTH],
    claimed_chunk: Bytes[CHUNK_BYTES],
    claimed_proof: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice Challenge the leading result of a secure-aggregation round by
            recomputing value `coordinate` of chunk `chunk` of the new model
            from the masked updates and the survivors' self-mask seeds
            (judged by secagg_judge.challenge_unmasking, which documents the
            arguments and the rounds it judges).
    @dev Effects and requirements: as `challenge`'s (the bond, the round,
         the vote, the window, the commitment), and the judge's.
    @return True if the value was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    task: fedchain.Task = staticcall self.fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    wrong: bool = self._judge(unmasking_judge.address, r)
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=6,
                   at=chunk * CHUNK + coordinate, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@internal
@view
def _under_challenge(task: fedchain.Task, task_id: uint256, round_id: uint256, vote: judging.Vote, recipe: judging.RecipeRule) -> fedchain.Round:
    """
    @dev What every challenge needs: the recipe rule is the task's, the round
         is the task's current one, `vote` is its leading vote and the
         window is open. Returns the round.
    """
    assert keccak256(abi_encode(recipe.rule, recipe.param1, recipe.param2, recipe.score, recipe.json_hash)) == task.recipe_hash, "challenges: not the task's rule"
    assert round_id == task.round and not task.finished, "challenges: not the current round"
    r: fedchain.Round = staticcall self.fc.rounds(task_id, round_id)
    assert r.leader != empty(bytes32), "challenges: no quorum"
    assert commitments._vote_hash(vote.model_root, vote.model_cid, vote.scores_root, vote.total_score, vote.rejected) == r.leader, "challenges: not the leading vote"
    assert block.number <= ((r.schedule >> 192) & U64) + task.challenge_blocks, "challenges: window closed"
    return r


@internal
def _judge(judge: address, r: fedchain.Round) -> bool:
    """
    @dev Judge this challenge: staticcall `judge` with the challenge's own
         calldata (its function has the same name and arguments, so the same
         selector), then use the sender's commitment to that calldata
         (_redeem). msg.data goes to the judge as it came, copied once to the
         top of memory: re-encoding the arguments would put a buffer of their
         largest size in this function's frame, and every temporary above it
         would pay memory expansion over the whole bound (docs/gas.md).
    """
    wrong: bool = abi_decode(raw_call(judge, msg.data, max_outsize=32, is_static_call=True), bool)
    self._redeem(r)
    return wrong


@internal
def _redeem(r: fedchain.Round):
    """
    @dev Use the sender's commitment to this challenge (commit_challenge),
         whose calldata is hashed by `hasher`. The commitment must be the
         sender's own, made while the round was open (at or after its
         opening block; also during the vote phase, when a challenge is
         already possible) and in an earlier block than this one, so a copy
         of a pending challenge finds none. Checked after the judgment, so a
         malformed proof reverts with what is wrong with it. The commitment
         is used up.
    """
    call: bytes32 = abi_decode(raw_call(hasher, msg.data, max_outsize=32, is_static_call=True), bytes32)
    commitment: bytes32 = keccak256(abi_encode(msg.sender, call))
    at: uint256 = self.committed[msg.sender][commitment]
    assert at != 0, "challenges: not committed"
    assert at < block.number, "challenges: committed in this block"
    assert at >= r.schedule & U64, "challenges: committed before the round"
    self.committed[msg.sender][commitment] = 0


@internal
def _settle(task_id: uint256, round_id: uint256, wrong: bool):
    """
    @dev The bond is posted either way (a challenge cannot be tried for
         free); a successful challenge reverts the round and returns it, a
         failed one's is forfeited: it stays here, owed to nobody
         (`forfeited`), since a task's pool would hand it to the sponsor, who
         could profit from provoking failed challenges (SECURITY-REVIEW M-5).
    """
    fc: fedchain.__interface__ = self.fc
    token: IERC20 = staticcall fc.token()
    assert extcall token.transferFrom(msg.sender, self, bond), "challenges: bond transfer failed"
    if wrong:
        extcall fc.revert_round(task_id, round_id, msg.sender)
        assert extcall token.transfer(msg.sender, bond), "challenges: bond refund failed"
    else:
        self.forfeited += bond
