"""The compiler: graph IR, shape inference, the front end from AST to graph, autodiff and passes."""
