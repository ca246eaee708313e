using QuikGraph;
using QuikGraph.Algorithms;

namespace ModelCompiler.IR;

/// <summary>
/// Graph algorithms over the IR through QuikGraph: the IR keeps operand order and types, QuikGraph
/// supplies the traversals (edges run from a value to its users).
/// </summary>
public static class GraphAnalysis
{
    public static AdjacencyGraph<Node, Edge<Node>> ToQuikGraph(Graph graph)
    {
        var g = new AdjacencyGraph<Node, Edge<Node>>(allowParallelEdges: true);
        g.AddVertexRange(graph.Nodes);
        foreach (var n in graph.Nodes)
            foreach (var input in n.Inputs)
            {
                if (!g.ContainsVertex(input))
                    throw new InvalidOperationException($"%{n.Id} uses %{input.Id}, which is not in graph {graph.Name}");
                g.AddEdge(new Edge<Node>(input, n));
            }
        return g;
    }

    /// <summary>
    /// A topological order that is stable: among ready nodes, the one that came first in the current
    /// order goes first, so printing stays readable and deterministic after rewrites. (QuikGraph's sorts
    /// are deterministic but reorder freely; this needs Kahn's algorithm with a priority queue.)
    /// </summary>
    public static IReadOnlyList<Node> TopologicalOrder(Graph graph)
    {
        var position = graph.Nodes.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i);
        var order = StableKahn(graph, position);
        if (order.Count != graph.Nodes.Count) throw new InvalidOperationException($"graph {graph.Name} has a cycle");
        return order;
    }

    /// <summary>Whether the use edges form a DAG (QuikGraph's check).</summary>
    public static bool IsAcyclic(Graph graph) => ToQuikGraph(graph).IsDirectedAcyclicGraph();

    private static List<Node> StableKahn(Graph graph, Dictionary<Node, int> position)
    {
        var indegree = graph.Nodes.ToDictionary(n => n, n => n.Inputs.Distinct().Count());
        var users = graph.Nodes.ToDictionary(n => n, _ => new List<Node>());
        foreach (var n in graph.Nodes)
            foreach (var i in n.Inputs.Distinct())
                users[i].Add(n);
        var ready = new PriorityQueue<Node, int>();
        foreach (var n in graph.Nodes.Where(n => indegree[n] == 0)) ready.Enqueue(n, position[n]);
        var result = new List<Node>(graph.Nodes.Count);
        while (ready.TryDequeue(out var n, out _))
        {
            result.Add(n);
            foreach (var u in users[n])
                if (--indegree[u] == 0) ready.Enqueue(u, position[u]);
        }
        return result;
    }

    /// <summary>The nodes the graph's outputs depend on (everything else is dead).</summary>
    public static HashSet<Node> Live(Graph graph)
    {
        // Reachability from the outputs, walking edges backwards (QuikGraph's reversed view).
        var reversed = new ReversedBidirectionalGraph<Node, Edge<Node>>(ToQuikGraph(graph).ToBidirectionalGraph());
        var live = new HashSet<Node>();
        var dfs = new QuikGraph.Algorithms.Search.DepthFirstSearchAlgorithm<Node, SReversedEdge<Node, Edge<Node>>>(reversed);
        dfs.DiscoverVertex += v => live.Add(v);
        foreach (var output in graph.Outputs.Select(o => o.Value).Distinct())
        {
            if (live.Contains(output)) continue;
            dfs.SetRootVertex(output);
            dfs.Compute(output);
        }
        return live;
    }

    /// <summary>For each node, the nodes that use it, in graph order.</summary>
    public static Dictionary<Node, List<Node>> Users(Graph graph)
    {
        var users = graph.Nodes.ToDictionary(n => n, _ => new List<Node>());
        foreach (var n in graph.Nodes)
            foreach (var i in n.Inputs.Distinct())
                if (users.TryGetValue(i, out var list)) list.Add(n);
        return users;
    }
}
