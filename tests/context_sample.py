"""A small multi-language repository for the context-packing tests, as files or as a git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

FILES: dict[str, str] = {
    "shop/__init__.py": "",
    "shop/pricing.py": '''"""Prices and discounts."""
from shop.money import Money, round_cents


class PriceBook:
    """Looks up the list price of a product."""

    def list_price(self, sku: str) -> Money:
        return Money(self.prices[sku])


def apply_discount(price: Money, percent: float) -> Money:
    """A discount of ``percent`` off ``price``, rounded to the cent."""
    if percent < 0 or percent > 100:
        raise ValueError("percent out of range")
    return round_cents(price * (1 - percent / 100))
''',
    "shop/money.py": '''"""Money arithmetic in cents."""
from decimal import Decimal


class Money(Decimal):
    """An amount of money."""


def round_cents(amount: Decimal) -> Money:
    return Money(amount.quantize(Decimal("0.01")))


def format_money(amount: Money, currency: str = "EUR") -> str:
    return f"{amount:.2f} {currency}"
''',
    "shop/shipping.py": '''"""Shipping rates by weight and zone."""


def shipping_rate(weight_kg: float, zone: str) -> float:
    table = {"eu": 4.5, "world": 12.0}
    return table[zone] + 0.8 * weight_kg
''',
    "shop/inventory.py": '''"""Stock levels per warehouse."""


class Inventory:
    def reserve(self, sku: str, quantity: int) -> bool:
        return quantity <= self.stock.get(sku, 0)

    def restock(self, sku: str, quantity: int) -> None:
        self.stock[sku] = self.stock.get(sku, 0) + quantity
''',
    "web/cart.ts": '''import { formatPrice } from "./format";

export interface CartLine { sku: string; quantity: number }

export class Cart {
  total(lines: CartLine[]): number { return lines.length; }
}
''',
    "web/format.ts": '''export function formatPrice(cents: number): string {
  return (cents / 100).toFixed(2);
}
''',
    "web/legacy.js": '''import { helper } from "./util";
function renderBanner(text) { return "<b>" + text + "</b>"; }
''',
    "svc/rates.go": '''package svc

import "fmt"

type Rate struct{ Zone string }

func (r *Rate) Describe(weight float64) string {
	return fmt.Sprintf("%s %f", r.Zone, weight)
}
''',
    "svc/Ledger.java": '''package svc;

import java.util.List;

public class Ledger {
    public long balance(List<Long> entries) { return 0; }
}
''',
    "README.md": "# Shop\nA toy shop used by the tests.\n",
}

TASK = ("apply_discount accepts a percent of 100.5 without complaint when called from PriceBook; "
        "it should reject anything above 100. Traceback: File \"shop/pricing.py\", line 15")


def write_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """A git checkout of ``files`` with two commits, the last touching ``shop/pricing.py``."""
    files = FILES if files is None else files
    root.mkdir(parents=True, exist_ok=True)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
                            "PATH": "/usr/bin:/bin", "HOME": str(root)})

    git("init", "-q")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "shop" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    git("add", "-A")
    git("commit", "-q", "-m", "initial shop")
    with (root / "shop" / "pricing.py").open("a") as fh:
        fh.write("\n\nMAX_DISCOUNT = 100\n")
    git("commit", "-q", "-am", "discount: name the maximum percent")
    return root
