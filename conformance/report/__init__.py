"""Reports: Allure results, the HTML rendering, the sequence diagrams, the conformance statement."""
