# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title availability
@notice The data-availability game. A fraud proof needs data: the voted
        model, the updates the vote accepted, a Krum-rule vote's distance
        table. A quorum that withholds that data would be unchallengeable, so
        during a round's challenge window anyone may ask, with a bond, for
        one node of one of those trees; the round cannot finalize while the
        request is open. Anyone may answer it (the voters, who vouched for the
        data; for an update, its trainer) by posting the node on chain with
        its Merkle path before the deadline: the answerer earns the bond and
        the node is in the Answered event for everyone. A request nobody
        answers in time reverts the round (fedchain.revert_round, the
        requester as its challenger): its voters become slashable for a wrong
        vote and the requester earns the reporter shares and its bond back.
@dev Trees and nodes (a node is named by its level, 0 at the root, and its
     position in that level):
       KIND_MODEL  the voted model's chunk tree (root: vote.model_root);
       KIND_UPDATE the chunk tree of the update revealed at `index`, which the
                   vote accepted (root: its revealed root, proven through its
                   commitment);
       KIND_TABLE  a Krum-rule vote's distance table (sumtree.vy), under
                   vote.scores_root = keccak256(scores tree root ++ table root).
     An answer is an inner node's children (so the asker can go down a level)
     or a leaf: a chunk's 256 bytes, the zero padding leaf, a table leaf's sums.
     A tree shallower than the requested level is answered with the leaf above
     the requested position, so an honest quorum can answer every request.
     Requests come only after the vote phase (then no equivocation can move
     the lead) and within the challenge window; each must be answered within
     `answer_blocks`, which is shorter than fedchain's slash grace, so a round
     a request reverts still slashes its voters before their stake can leave
     (SECURITY-REVIEW M-2, H-3). One request per node and round, at most
     MAX_REQUESTS a round: finalizing waits at most `answer_blocks` past the
     window.
     Money: this contract holds exactly the bonds of open requests (`held`).
"""

from ethereum.ercs import IERC20
import fedchain
import merkle
import commitments
import sumtree
import layout

KIND_MODEL: constant(uint8) = 1
KIND_UPDATE: constant(uint8) = 2
KIND_TABLE: constant(uint8) = 3
MAX_DEPTH: constant(uint256) = sumtree.MAX_DEPTH
MAX_REQUESTS: constant(uint256) = 64
CHUNK_BYTES: constant(uint256) = 256
RULE_KRUM: constant(uint256) = 4
RULE_BULYAN: constant(uint256) = 6


struct Vote:
    model_root: bytes32
    model_cid: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256


struct RecipeRule:
    # the preimage of the task's recipe hash (as in challenges.vy): a table
    # request needs a Krum rule, whose votes commit to a table
    rule: uint256
    param1: uint256
    param2: uint256
    score: uint256
    json_hash: bytes32


struct Request:
    requester: address
    task_id: uint256
    round_id: uint256
    kind: uint8
    index: uint256       # KIND_UPDATE: the reveal index
    level: uint256
    position: uint256
    deadline: uint256    # the last block an answer is due in
    leader: bytes32      # the leading vote it asks about
    open: bool


struct NodeAnswer:
    # a node of a model or update tree: an inner node's children, or a leaf
    # (256 bytes of chunk; no bytes: the zero padding leaf)
    inner: bool
    left: bytes32
    right: bytes32
    data: Bytes[CHUNK_BYTES]
    siblings: DynArray[bytes32, MAX_DEPTH]


struct Opening:
    # KIND_UPDATE: whose update, its root and salt (proven by commitment)
    node: address
    update_root: bytes32
    salt: bytes32


struct TableAnswer:
    scores_tree_root: bytes32
    inner: bool
    left: bytes32
    right: bytes32
    sums: DynArray[uint256, sumtree.MAX_PAIRS]
    siblings: DynArray[bytes32, MAX_DEPTH]
    digests: DynArray[bytes32, MAX_DEPTH]


deployer: immutable(address)
bond: public(immutable(uint256))
answer_blocks: public(immutable(uint256))
fc: public(fedchain.__interface__)
requests: public(HashMap[bytes32, Request])
# task -> round -> requests not yet answered or settled (finalize waits for 0)
open_requests: public(HashMap[uint256, HashMap[uint256, uint256]])
# task -> round -> requests made
made: public(HashMap[uint256, HashMap[uint256, uint256]])
# bonds of open requests: this contract's whole token balance
held: public(uint256)
# task -> round -> bitmap of reveal indices whose accepted update was asked for,
# never answered, and so reverted the round: its trainer withheld it
# (slashing.slash_withheld)
withheld: public(HashMap[uint256, HashMap[uint256, uint256]])


event Requested:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    request_id: indexed(bytes32)
    requester: address
    kind: uint8
    index: uint256
    level: uint256
    position: uint256
    deadline: uint256

event Answered:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    request_id: indexed(bytes32)
    answerer: address
    inner: bool
    left: bytes32
    right: bytes32
    data: Bytes[CHUNK_BYTES]

event TableAnswered:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    request_id: indexed(bytes32)
    answerer: address
    inner: bool
    left: bytes32
    right: bytes32
    sums: DynArray[uint256, sumtree.MAX_PAIRS]

event Unanswered:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    request_id: indexed(bytes32)
    reverted: bool


@deploy
def __init__(bond_: uint256, answer_blocks_: uint256):
    """
    @param bond_ Tokens a requester posts: the answerer's, or back to the
           requester if nobody answers.
    @param answer_blocks_ Blocks an answer is due in after its request
           (fedchain checks at deployment that it is shorter than the slash
           grace).
    """
    assert answer_blocks_ > 0, "availability: zero answer time"
    deployer = msg.sender
    bond = bond_
    answer_blocks = answer_blocks_


@external
def bind(fedchain_: fedchain.__interface__):
    """
    @notice Name the fedchain contract this contract serves (once, by the
            deployer: fedchain takes this contract's address at deployment).
    """
    assert msg.sender == deployer, "availability: not the deployer"
    assert self.fc.address == empty(address), "availability: already bound"
    self.fc = fedchain_


@external
@nonreentrant
def request(task_id: uint256, round_id: uint256, vote: Vote, recipe: RecipeRule, kind: uint8, index: uint256,
            level: uint256, position: uint256) -> bytes32:
    """
    @notice Ask for one node of the data the leading vote of a round rests
            on; the round cannot finalize until it is answered or settled.
    @param vote The leading vote's fields (from its Voted event).
    @param recipe The task's recipe rule (its hash is the task's): a table
           request needs a Krum rule.
    @param kind KIND_MODEL, KIND_UPDATE (the update revealed at `index`) or
           KIND_TABLE.
    @param level The node's level (0: the root); `position` its position.
    @dev Effects: the bond moves from the sender to this contract; the
         request is open until `deadline` = this block + answer_blocks.
         Requirements: an open round whose leading vote is `vote`, after its
         vote phase and within its challenge window; level <= 20 and position
         < 2**level; for an update, a reveal the vote accepted; for a table, a
         Krum rule; this node not requested before in the round; fewer than
         64 requests in the round; the bond's allowance.
    @return The request's id: keccak256(task, round, kind, index, level, position).
    """
    fc: fedchain.__interface__ = self.fc
    facts: fedchain.RoundFacts = staticcall fc.round_facts(task_id, round_id)
    assert facts.status == layout.OPEN and facts.leader != empty(bytes32), "availability: no leading vote"
    assert self._vote_hash(vote) == facts.leader, "availability: not the leading vote"
    validate_end: uint256 = layout._validate_end(facts.schedule)
    assert block.number > validate_end, "availability: vote phase open"
    assert block.number <= validate_end + facts.challenge_blocks, "availability: window closed"
    assert level <= MAX_DEPTH and position < 2**level, "availability: bad node"
    if kind == KIND_UPDATE:
        assert index < facts.reveals and (vote.rejected >> index) & 1 == 0, "availability: not an accepted update"
    elif kind == KIND_TABLE:
        assert keccak256(abi_encode(recipe.rule, recipe.param1, recipe.param2, recipe.score, recipe.json_hash)) == facts.recipe_hash, "availability: not the task's rule"
        assert recipe.rule >= RULE_KRUM and recipe.rule <= RULE_BULYAN, "availability: no distance table"
    else:
        assert kind == KIND_MODEL, "availability: unknown kind"
    made: uint256 = self.made[task_id][round_id]
    assert made < MAX_REQUESTS, "availability: too many requests"
    rid: bytes32 = keccak256(abi_encode(task_id, round_id, kind, index, level, position))
    assert self.requests[rid].requester == empty(address), "availability: already requested"
    deadline: uint256 = block.number + answer_blocks
    self.requests[rid] = Request(requester=msg.sender, task_id=task_id, round_id=round_id, kind=kind, index=index,
                                 level=level, position=position, deadline=deadline, leader=facts.leader, open=True)
    self.made[task_id][round_id] = made + 1
    self.open_requests[task_id][round_id] += 1
    self.held += bond
    log Requested(task_id=task_id, round_id=round_id, request_id=rid, requester=msg.sender, kind=kind, index=index,
                  level=level, position=position, deadline=deadline)
    assert extcall (staticcall fc.token()).transferFrom(msg.sender, self, bond), "availability: bond transfer failed"
    return rid


@external
@nonreentrant
def answer(request_id: bytes32, vote: Vote, node: NodeAnswer, opening: Opening):
    """
    @notice Answer a request for a node of the voted model's tree or of an
            accepted update's tree.
    @param vote The leading vote the request was made against.
    @param node The node (an inner node's children, or a leaf) and its
           siblings up to the root: as many as the requested level, or fewer
           for a leaf (the tree is shallower: the leaf above the position).
    @param opening For an update: its trainer, revealed root and salt.
    @dev Effects: the request closes and its bond goes to the sender; the
         node is logged (Answered). Requirements: an open request of kind
         model or update (answered late is still answered, until settled), the
         vote it was made against, a valid node, path and, for an update, a
         commitment and reveal index that match.
    """
    r: Request = self._open(request_id, vote)
    root: bytes32 = vote.model_root
    if r.kind == KIND_UPDATE:
        fc: fedchain.__interface__ = self.fc
        assert (staticcall fc.record(r.task_id, r.round_id, opening.node)) & layout.INDEX_MASK == r.index + 1, "availability: not that reveal"
        c: bytes32 = keccak256(abi_encode(commitments.COMMIT_DOMAIN, chain.id, fc.address, r.task_id, r.round_id,
                                          opening.node, opening.update_root, opening.salt))
        assert staticcall fc.commitment(r.task_id, r.round_id, opening.node) == c, "availability: root does not match commitment"
        root = opening.update_root
    else:
        assert r.kind == KIND_MODEL, "availability: a table request"
    h: bytes32 = empty(bytes32)  # the zero padding leaf
    if node.inner:
        assert len(node.data) == 0, "availability: bad node"
        h = keccak256(concat(node.left, node.right))
    elif len(node.data) > 0:
        assert len(node.data) == CHUNK_BYTES, "availability: bad chunk length"
        h = keccak256(node.data)
    at: uint256 = self._position(r, len(node.siblings), node.inner)
    assert merkle._verify(h, at, node.siblings, root), "availability: bad proof"
    self._close(request_id, r, msg.sender)
    log Answered(task_id=r.task_id, round_id=r.round_id, request_id=request_id, answerer=msg.sender,
                 inner=node.inner, left=node.left, right=node.right, data=node.data)


@external
@nonreentrant
def answer_table(request_id: bytes32, vote: Vote, node: TableAnswer):
    """
    @notice Answer a request for a node of a Krum-rule vote's distance table.
    @param node The node: an inner node's children and sums, or a leaf's sums
           (its chunk is its position); its siblings and their parents' sums
           digests up to the table root (sumtree.vy), and the vote's scores
           tree root.
    @dev Effects and requirements as `answer`, for a table request; the
         node is logged (TableAnswered).
    """
    r: Request = self._open(request_id, vote)
    assert r.kind == KIND_TABLE, "availability: not a table request"
    at: uint256 = self._position(r, len(node.siblings), node.inner)
    h: bytes32 = empty(bytes32)
    if node.inner:
        h = sumtree._node(node.left, node.right, node.sums)
    else:
        h = sumtree._leaf(at, node.sums)
    table: bytes32 = sumtree._root_through(h, at, node.siblings, node.digests)
    assert table != empty(bytes32) and keccak256(concat(node.scores_tree_root, table)) == vote.scores_root, "availability: bad proof"
    self._close(request_id, r, msg.sender)
    log TableAnswered(task_id=r.task_id, round_id=r.round_id, request_id=request_id, answerer=msg.sender,
                      inner=node.inner, left=node.left, right=node.right, sums=node.sums)


@external
@nonreentrant
def settle(request_id: bytes32):
    """
    @notice Close a request nobody answered by its deadline: the requester
            gets its bond back and, if the round is still open on the same
            leading vote, the round is reverted with the requester as its
            challenger (its voters become slashable, slashing.slash_wrong_vote;
            for an accepted update, its trainer too, slashing.slash_withheld).
    @dev Anyone may call it. Effects: for an update request that reverts the
         round, the reveal index is marked in `withheld`. Requirements: an
         open request past its deadline.
    """
    r: Request = self.requests[request_id]
    assert r.open, "availability: no open request"
    assert block.number > r.deadline, "availability: answer not due yet"
    self.requests[request_id].open = False
    self.open_requests[r.task_id][r.round_id] -= 1
    self.held -= bond
    fc: fedchain.__interface__ = self.fc
    facts: fedchain.RoundFacts = staticcall fc.round_facts(r.task_id, r.round_id)
    reverted: bool = facts.status == layout.OPEN and facts.leader == r.leader
    log Unanswered(task_id=r.task_id, round_id=r.round_id, request_id=request_id, reverted=reverted)
    if reverted:
        if r.kind == KIND_UPDATE:
            self.withheld[r.task_id][r.round_id] |= 1 << r.index
        extcall fc.revert_round(r.task_id, r.round_id, r.requester)
    assert extcall (staticcall fc.token()).transfer(r.requester, bond), "availability: bond refund failed"


@internal
@view
def _open(request_id: bytes32, vote: Vote) -> Request:
    """
    @dev The open request `request_id`, made against the leading vote `vote`.
    """
    r: Request = self.requests[request_id]
    assert r.open, "availability: no open request"
    assert self._vote_hash(vote) == r.leader, "availability: not the request's vote"
    return r


@internal
@pure
def _position(r: Request, depth: uint256, inner: bool) -> uint256:
    """
    @dev The position at `depth` of the requested node: the node itself, or
         for a leaf above the requested level (a shallower tree) its ancestor.
    """
    assert depth == r.level or (depth < r.level and not inner), "availability: not the requested node"
    return r.position >> (r.level - depth)


@internal
def _close(request_id: bytes32, r: Request, answerer: address):
    """
    @dev Close an answered request and pay its bond to the answerer (state first).
    """
    self.requests[request_id].open = False
    self.open_requests[r.task_id][r.round_id] -= 1
    self.held -= bond
    assert extcall (staticcall self.fc.token()).transfer(answerer, bond), "availability: bond transfer failed"


@internal
@pure
def _vote_hash(v: Vote) -> bytes32:
    """
    @dev The vote's identity, as fedchain hashes it (commitments._vote_hash).
    """
    return commitments._vote_hash(v.model_root, v.model_cid, v.scores_root, v.total_score, v.rejected)
