"""What every backend keeps of the hosts' asset records (``rollout.state.assets``).

A backend's test class subclasses ``AssetContract`` next to ``StateContract``; the same
``backend`` fixture serves both."""

from __future__ import annotations

from state_contract import Backend

from rollout.core.assets import HostAssets, Probe


def host(plant: str, name: str, collected: float, packages: dict[str, str] | None = None) -> HostAssets:
    probe = Probe("Debian GNU/Linux", "12", "6.1.0-18-amd64", "x86_64", "dpkg", packages or {"openssl": "3.0.11-1"})
    return HostAssets(plant, name, probe, {"edge": "v1", "ingest": None}, collected)


class AssetContract:
    def test_assets_are_kept_whole_and_read_back_by_plant_then_host(self, backend: Backend) -> None:
        journal = backend.open()
        assert journal.assets() == [], "a new state has asset records"
        many = {f"pkg-{i:04d}": f"1.{i}-1~deb12u{i}" for i in range(3000)}  # a full host: thousands of packages
        records = [host("p2", "b", 10.0), host("p1", "z", 11.0, many), host("p1", "a", 12.0)]
        journal.put_assets(records)
        assert journal.assets() == [records[2], records[1], records[0]], "not by plant, then host"
        assert journal.assets("p1") == [records[2], records[1]] and journal.assets("nowhere") == []
        assert backend.open().assets("p2") == [records[0]], "another connection does not see them"

    def test_a_hosts_new_record_replaces_its_old_one_and_leaves_the_others(self, backend: Backend) -> None:
        journal = backend.open()
        journal.put_assets([host("p1", "a", 10.0), host("p1", "b", 10.0)])
        patched = host("p1", "a", 20.0, {"openssl": "3.0.15-1"})
        journal.put_assets([patched])
        assert journal.assets("p1") == [patched, host("p1", "b", 10.0)], journal.assets("p1")
        journal.put_assets([])
        assert len(journal.assets()) == 2, "an empty write changed something"
