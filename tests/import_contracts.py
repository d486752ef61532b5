"""An import-linter contract of our own: no two project modules import each other, even
through others (`make test` runs it with the stock layers contracts in .importlinter).

The layers contracts let modules of one layer import each other (jobs and tasks are
one state machine in two packages); this one keeps those imports a tree, so that
no module needs an import inside a function to break a cycle.
"""

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        modules = sorted(m for m in graph.modules
                         if m.split(".")[0] in self.packages and ".migrations" not in m)
        cycles = [c for c in _strongly_connected(modules, graph) if len(c) > 1]
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles, "graph": graph})

    def render_broken_contract(self, check: ContractCheck) -> None:
        graph = check.metadata["graph"]
        for cycle in check.metadata["cycles"]:
            members = set(cycle)
            output.print_error(f"Import cycle among {len(cycle)} modules:")
            for importer in cycle:
                for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                    lines = graph.get_import_details(importer=importer, imported=imported)
                    where = ", ".join(f"l.{d['line_number']}" for d in lines)
                    output.print(f"    {importer} -> {imported} ({where})")
            output.new_line()


def _strongly_connected(modules: list[str], graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph has a few hundred modules)."""
    inside = set(modules)
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def edges(module):
        return sorted(graph.find_modules_directly_imported_by(module) & inside)

    for root in modules:
        if root in index:
            continue
        work = [(root, iter(edges(root)))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges(child))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found
