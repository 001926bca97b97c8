"""Risk control: rules, blocked subjects, risk events, and the review of held orders."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from domain.risk import Action, BlockKind, Outcome, Scope, SubjectKind
from persistence.risk import BlockRecord, RiskEventRecord, RiskRuleRecord
from schema import ids
from schema.context import Info
from schema.errors import UserError
from schema.orders import Order
from schema.pagination import Connection

if TYPE_CHECKING:
    from schema.catalog import Product
    from schema.channels import Channel

RiskScope = strawberry.enum(
    Scope,
    name="RiskScope",
    description="Whose orders a rule counts: per buyer IP address, device id, buyer account "
    "id (as placeOrder's `buyer` gives them), or per ordering channel.",
)
RiskAction = strawberry.enum(
    Action,
    name="RiskAction",
    description="What becomes of orders beyond a rule's limit: BLOCK refuses them "
    "(RISK_BLOCKED); REVIEW holds them, codes reserved, for approveOrder or rejectOrder.",
)
RiskDecision = strawberry.enum(Outcome, name="RiskDecision")
BlockKindEnum = strawberry.enum(BlockKind, name="BlockKind")
RiskSubjectKind = strawberry.enum(SubjectKind, name="RiskSubjectKind")


@strawberry.type(description="At most `limit` orders per subject in any `windowSeconds`.")
class RiskRule:
    record: strawberry.Private[RiskRuleRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("RiskRule", self.record.rule.id)

    @strawberry.field
    def scope(self) -> RiskScope:  # type: ignore[valid-type]
        return self.record.rule.scope

    @strawberry.field
    def limit(self) -> int:
        return self.record.rule.limit

    @strawberry.field
    def window_seconds(self) -> int:
        return self.record.rule.window_seconds

    @strawberry.field
    def action(self) -> RiskAction:  # type: ignore[valid-type]
        return self.record.rule.action

    @strawberry.field(description="Whether the rule is applied (it is unless disabled).")
    def active(self) -> bool:
        return self.record.disabled_at is None

    @strawberry.field
    def disabled_at(self) -> datetime | None:
        return self.record.disabled_at

    @strawberry.field
    def created_by(self) -> str:
        return self.record.created_by

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.record.updated_at


@strawberry.type(description="A subject whose orders are refused outright while blocked.")
class BlockedSubject:
    record: strawberry.Private[BlockRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("BlockedSubject", self.record.id)

    @strawberry.field
    def kind(self) -> BlockKindEnum:  # type: ignore[valid-type]
        return self.record.kind

    @strawberry.field
    def value(self) -> str:
        return self.record.value

    @strawberry.field
    def reason(self) -> str:
        return self.record.reason

    @strawberry.field(description="Whether the block is in force (it is until unblocked).")
    def active(self) -> bool:
        return self.record.unblocked_at is None

    @strawberry.field
    def created_by(self) -> str:
        return self.record.created_by

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def unblocked_by(self) -> str | None:
        return self.record.unblocked_by

    @strawberry.field
    def unblocked_at(self) -> datetime | None:
        return self.record.unblocked_at


@strawberry.type(
    description="A decision of risk control: about an order attempt a rule or block applied "
    "to, a reviewer's approval (ALLOW) or rejection (BLOCK) of a held order, or a refused "
    "redemption."
)
class RiskEvent:
    record: strawberry.Private[RiskEventRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("RiskEvent", self.record.id)

    @strawberry.field
    def at(self) -> datetime:
        return self.record.at

    @strawberry.field
    def decision(self) -> RiskDecision:  # type: ignore[valid-type]
        return self.record.outcome

    @strawberry.field
    def subject_kind(self) -> RiskSubjectKind:  # type: ignore[valid-type]
        return self.record.subject.kind

    @strawberry.field
    def subject_value(self) -> str:
        return self.record.subject.value

    @strawberry.field
    def reason(self) -> str:
        return self.record.reason

    @strawberry.field(description="What the decision was taken on (the attempt's buyer, say).")
    def context(self) -> JSON:
        return JSON(self.record.context)

    @strawberry.field(description="The rule that decided (the platform only sees rules).")
    async def rule(self, info: Info) -> RiskRule | None:
        from resolvers.risk import resolve_event_rule

        return await resolve_event_rule(info, self.record)

    @strawberry.field(description="The channel whose order or code it concerns.")
    async def channel(self, info: Info) -> Annotated[Channel, strawberry.lazy("schema.channels")]:
        from resolvers.channels import resolve_channel_of

        return await resolve_channel_of(info, self.record.channel_id)

    @strawberry.field
    async def product(
        self, info: Info
    ) -> Annotated[Product, strawberry.lazy("schema.catalog")] | None:
        from resolvers.risk import resolve_event_product

        return await resolve_event_product(info, self.record)

    @strawberry.field(description="The order it held, or the held order a reviewer decided.")
    async def order(self, info: Info) -> Order | None:
        from resolvers.risk import resolve_event_order

        return await resolve_event_order(info, self.record)


@strawberry.input(
    description="A new rule (scope, limit, windowSeconds and action), or changes to the rule "
    "`id` names (the fields given)."
)
class SetRiskRuleInput:
    id: strawberry.ID | None = None
    scope: RiskScope | None = None  # type: ignore[valid-type]
    limit: int | None = None
    window_seconds: int | None = None
    action: RiskAction | None = None  # type: ignore[valid-type]
    disabled: bool | None = strawberry.field(
        default=None, description="True stops applying the rule; false applies it again."
    )


@strawberry.type
class SetRiskRulePayload:
    risk_rule: RiskRule | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Block an IP address, device id or buyer account id.")
class BlockSubjectInput:
    kind: BlockKindEnum  # type: ignore[valid-type]
    value: str
    reason: str


@strawberry.type
class BlockSubjectPayload:
    blocked_subject: BlockedSubject | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class UnblockSubjectInput:
    kind: BlockKindEnum  # type: ignore[valid-type]
    value: str


@strawberry.type
class UnblockSubjectPayload:
    blocked_subject: BlockedSubject | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RiskEventFilter:
    decision: RiskDecision | None = None  # type: ignore[valid-type]
    subject_kind: RiskSubjectKind | None = None  # type: ignore[valid-type]
    subject_value: str | None = None
    order_id: strawberry.ID | None = None


@strawberry.input
class ApproveOrderInput:
    order_id: strawberry.ID


@strawberry.type
class ApproveOrderPayload:
    order: Order | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RejectOrderInput:
    order_id: strawberry.ID
    reason: str


@strawberry.type
class RejectOrderPayload:
    order: Order | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RiskQuery:
    @strawberry.field(description="Every risk rule, disabled ones too (platform only).")
    async def risk_rules(self, info: Info) -> list[RiskRule]:
        from resolvers.risk import risk_rules

        return await risk_rules(info)

    @strawberry.field(description="Blocked subjects, newest first (platform only).")
    async def blocked_subjects(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        active: Annotated[
            bool, strawberry.argument(description="False lists ended blocks too.")
        ] = True,
    ) -> Connection[BlockedSubject]:
        from resolvers.risk import blocked_subjects

        return await blocked_subjects(info, first, after, active)

    @strawberry.field(
        description="Risk decisions, newest first: all for the platform, those about the "
        "orders of its subtree for a channel."
    )
    async def risk_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: RiskEventFilter | None = None,
    ) -> Connection[RiskEvent]:
        from resolvers.risk import risk_events

        return await risk_events(info, first, after, filter)


@strawberry.type
class RiskMutation:
    @strawberry.mutation(description="Add a risk rule, or change one (platform only).")
    async def set_risk_rule(self, info: Info, input: SetRiskRuleInput) -> SetRiskRulePayload:
        from resolvers.risk import set_risk_rule

        return await set_risk_rule(info, input)

    @strawberry.mutation(description="Refuse every order from a subject (platform only).")
    async def block_subject(self, info: Info, input: BlockSubjectInput) -> BlockSubjectPayload:
        from resolvers.risk import block_subject

        return await block_subject(info, input)

    @strawberry.mutation(description="End a subject's block (platform only).")
    async def unblock_subject(
        self, info: Info, input: UnblockSubjectInput
    ) -> UnblockSubjectPayload:
        from resolvers.risk import unblock_subject

        return await unblock_subject(info, input)

    @strawberry.mutation(
        description="Approve an order held for review: it is paid from the buyer's balance "
        "with the codes it holds. By the platform or a channel above the buyer."
    )
    async def approve_order(self, info: Info, input: ApproveOrderInput) -> ApproveOrderPayload:
        from resolvers.order_review import approve_order

        return await approve_order(info, input)

    @strawberry.mutation(
        description="Reject an order held for review: its codes go back to stock and it "
        "ends CANCELLED with the reason."
    )
    async def reject_order(self, info: Info, input: RejectOrderInput) -> RejectOrderPayload:
        from resolvers.order_review import reject_order

        return await reject_order(info, input)
