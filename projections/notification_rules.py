"""Personal notification rules as the API lists them."""

from __future__ import annotations

from functools import singledispatchmethod
from uuid import UUID

from domain.ids import PREFIX_USER, public_id
from domain.notification_rules import PREFIX_NOTIFICATION_RULE, WAIT, NotificationRules
from domain.users import User
from projections.db import Cursor, Database
from projections.queries import Page, paginate
from projections.runner import Projection

RULES_PAGE_SIZE = 50  # OnCall's (FiftyPageSizePaginator)


class NotificationRulesView(Projection):
    name = "personal_notification_rules"
    upstream = "config"
    tables = ("personal_notification_rule_owners", "personal_notification_rules")

    @singledispatchmethod
    def apply(self, event: object, cur: Cursor, position: int) -> None:
        """Other configuration events are other views'."""

    @apply.register
    def _(self, e: NotificationRules.Created, cur: Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO personal_notification_rule_owners (uuid, user_id) VALUES (%s, %s)",
            (str(e.originator_id), public_id(PREFIX_USER, e.user_id)),
        )

    @apply.register
    def _(self, e: NotificationRules.RuleAdded, cur: Cursor, position: int) -> None:
        owner = cur.execute(
            "SELECT user_id FROM personal_notification_rule_owners WHERE uuid = %s", (str(e.originator_id),)
        ).fetchone()
        user_id, important = owner["user_id"], int(e.important)
        cur.execute(
            "UPDATE personal_notification_rules SET position = position + 1"
            " WHERE user_id = %s AND important = %s AND position >= %s",
            (user_id, important, e.position),
        )
        cur.execute(
            "INSERT INTO personal_notification_rules (id, uuid, user_id, important, position, type, duration)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                public_id(PREFIX_NOTIFICATION_RULE, e.rule_id),
                str(e.rule_id),
                user_id,
                important,
                e.position,
                e.step["type"],
                e.step.get("duration"),
            ),
        )

    @apply.register
    def _(self, e: NotificationRules.RuleChanged, cur: Cursor, position: int) -> None:
        cur.execute(
            "UPDATE personal_notification_rules SET type = %s, duration = %s WHERE uuid = %s",
            (e.step["type"], e.step.get("duration"), str(e.rule_id)),
        )

    @apply.register
    def _(self, e: NotificationRules.RuleMoved, cur: Cursor, position: int) -> None:
        row = self._take_out(cur, e.rule_id)
        if row is None:
            return
        cur.execute(
            "UPDATE personal_notification_rules SET position = position + 1"
            " WHERE user_id = %s AND important = %s AND position >= %s",
            (row["user_id"], row["important"], e.position),
        )
        cur.execute("UPDATE personal_notification_rules SET position = %s WHERE uuid = %s", (e.position, str(e.rule_id)))

    @apply.register
    def _(self, e: NotificationRules.RuleRemoved, cur: Cursor, position: int) -> None:
        self._take_out(cur, e.rule_id)
        cur.execute("DELETE FROM personal_notification_rules WHERE uuid = %s", (str(e.rule_id),))

    @apply.register
    def _(self, e: User.Deleted, cur: Cursor, position: int) -> None:
        cur.execute(
            "DELETE FROM personal_notification_rules WHERE user_id = %s", (public_id(PREFIX_USER, e.originator_id),)
        )

    @staticmethod
    def _take_out(cur: Cursor, rule_id: UUID) -> dict | None:
        """Close the gap a rule leaves in its list (its own row then sits at -1)."""
        row = cur.execute(
            "SELECT user_id, important, position FROM personal_notification_rules WHERE uuid = %s", (str(rule_id),)
        ).fetchone()
        if row is None:
            return None
        cur.execute("UPDATE personal_notification_rules SET position = -1 WHERE uuid = %s", (str(rule_id),))
        cur.execute(
            "UPDATE personal_notification_rules SET position = position - 1"
            " WHERE user_id = %s AND important = %s AND position > %s",
            (row["user_id"], row["important"], row["position"]),
        )
        return row


# --- queries ------------------------------------------------------------------------------------

RULES = (
    "SELECT r.*, u.uuid AS user_uuid, u.created_at AS user_created_at FROM personal_notification_rules r"
    " JOIN users u ON u.id = r.user_id AND u.deleted = 0"
)
RULES_ORDER = "user_created_at, user_id, important, position"


def shown_rule(row: dict) -> dict:
    """A rule in OnCall's shape: ``duration`` only for a wait."""
    rule = {
        "id": row["id"],
        "user_id": row["user_id"],
        "position": row["position"],
        "type": row["type"],
        "important": bool(row["important"]),
    }
    if row["type"] == WAIT:
        rule["duration"] = row["duration"]
    return rule


def rules_page(db: Database, user_id: str | None, important: bool | None, number: int, size: int) -> Page:
    """Live users' rules: by user (oldest first), default before important, then position."""
    where, params = [], []
    if user_id is not None:
        where.append("r.user_id = %s")
        params.append(user_id)
    if important is not None:
        where.append("r.important = %s")
        params.append(int(important))
    page = paginate(db, RULES, where, params, RULES_ORDER, number, size)
    return Page([shown_rule(row) for row in page.rows], page.count, page.number, page.size)


def rule_by_id(db: Database, rule_id: str) -> dict | None:
    """A rule of a live user, as the API shows it, with its ``uuid`` and its user's (``user_uuid``)."""
    row = db.query_one(f"{RULES} WHERE r.id = %s", (rule_id,))
    return None if row is None else {**shown_rule(row), "uuid": row["uuid"], "user_uuid": row["user_uuid"]}
