// Operator views: owned by the operator console engineer (placeholder).
